"""The trio shell: listeners, connections, effects, and the ``xsd`` entry point."""
