"""Planning against a device profile: candidates, analytic estimates, and the search."""
