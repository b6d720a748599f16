"""Process-level settings that must be in place before a process starts (read once by glibc)."""

# glibc returning freed memory to the kernel on every step made page faults half of a CPU training step.
MALLOC_TUNING = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
