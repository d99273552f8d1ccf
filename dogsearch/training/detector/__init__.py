"""Training of the dog detector's head (`dogsearch train detector`)."""
