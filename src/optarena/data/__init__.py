"""Data that ships with optarena, and readers for data the user points to."""
