"""A local fake CoMagic account (Call API, Data API, notifications sender) for tests."""
