"""Generated gRPC code for switchyard.v1."""
