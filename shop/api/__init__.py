"""The JSON API of DESIGN.md: the contract Locust, the tests and other clients rely on."""
