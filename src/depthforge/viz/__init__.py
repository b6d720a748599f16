"""viz/: pictures from depth maps — colour maps, panels, plots, point clouds."""
