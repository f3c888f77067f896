"""Built-in everpy modules, one package per module (installed as ``everpy_modules``)."""
