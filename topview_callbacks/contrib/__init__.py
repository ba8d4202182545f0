"""Optional integrations with other packages; each module imports its package only there."""
