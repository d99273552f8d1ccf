"""Training of the default pose model (`dogsearch train pose`)."""
