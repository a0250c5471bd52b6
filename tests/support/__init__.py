"""Test helpers shared by several test folders (real servers, processes)."""
