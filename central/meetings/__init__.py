"""Meeting pages: list, create, edit, states, documents, and drafting the meeting's invitations."""
