"""The protocols (Normal, Auto) that give every method the same labels, and the active rounds."""
