"""The recipe: every stage of a build called in order, and the build folder it writes."""
