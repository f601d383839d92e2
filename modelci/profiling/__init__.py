"""Model loading, conversion, static and dynamic profiling, and the profiling worker."""
