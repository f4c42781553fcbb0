"""The ``retrievekit`` command line."""
