"""Persona-era models kept for migration and the compatibility layer."""
