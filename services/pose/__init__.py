"""Dog pose service: find the dogs, AP-10K keypoints per dog, body analysis, skeleton overlay."""
