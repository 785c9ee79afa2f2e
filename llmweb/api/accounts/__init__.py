"""Account endpoints: me, teams and members, personal tokens."""
