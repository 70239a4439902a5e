"""Who sent it and where it goes: staff authentication, machine mail, routing."""
