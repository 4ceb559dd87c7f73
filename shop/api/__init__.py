"""The JSON API of docs/architecture.md: the contract Locust, the tests and other clients rely on."""
