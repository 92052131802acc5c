"""The package version, in a module of its own: the modules that stamp it into files
(run folders, the planner's cache) need it without importing the package facade."""

__version__ = "0.3.0"
