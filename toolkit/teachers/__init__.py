"""Teachers: the ensemble, the knowledge-graph teacher, a user's module or scores file."""
