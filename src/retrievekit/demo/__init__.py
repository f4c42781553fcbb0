"""Ready-made demo corpora that need no download (see ``retrievekit.demo.stdlib_corpus``)."""
