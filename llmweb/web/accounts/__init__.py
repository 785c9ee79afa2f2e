"""Account pages: sign-up, teams and members, personal API tokens."""
