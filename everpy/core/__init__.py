"""everpy's runtime: file formats, bus, module API, lifecycle and plugins."""
