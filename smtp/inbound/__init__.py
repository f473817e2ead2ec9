"""The inbound decisions taken before the 250: authentication, spam verdict, policy, rate limits."""
