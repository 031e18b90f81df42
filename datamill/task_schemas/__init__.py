"""Task schemas: how each type of sample is displayed, validated, reviewed and exported."""
