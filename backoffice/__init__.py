"""Back office: the admin index dashboard, on top of every other app."""
