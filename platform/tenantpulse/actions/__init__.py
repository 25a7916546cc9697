"""Playbooks, action handlers and the action log: analysis results turned into actions, once."""
