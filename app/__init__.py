"""SaferMap: crime and CCTV mapping for community safety partnerships."""
