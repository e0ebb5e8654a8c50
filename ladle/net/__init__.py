"""ladle's networking: the IPAM (pot's potnet, inside ladle), then bridges, exports and names."""
