"""The ``peel`` command line: a thin layer over engine functions shared with the GUI."""
