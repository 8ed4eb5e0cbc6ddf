"""One module per CLI subcommand; each only parses arguments and calls the library."""
