"""Package marker: makes setuptools ship the interface YAML here as package data in wheels."""
