"""The demo shop the lab runs: catalog, cart, accounts, checkout, and its JSON API."""
