"""Who is calling and what they may do: identities (authentication) and authorization."""
