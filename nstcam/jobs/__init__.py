"""Long jobs that call the trainer: snapshot refinement and background training of a new style."""
