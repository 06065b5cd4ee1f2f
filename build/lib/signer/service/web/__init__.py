"""The Flask layer: it only translates HTTP to the service's calls and refusals to JSON."""
