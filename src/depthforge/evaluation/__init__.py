"""evaluation/: metrics by the field's protocols, failure-mode metrics, evaluation runs and reports."""
