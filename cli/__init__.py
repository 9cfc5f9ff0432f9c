"""The `newsflash` command line: it starts web, worker and beat, so it lives beside them."""
