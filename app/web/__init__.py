"""The HTTP edge of the API: what a request meets before GraphQL runs it.

`size` bounds bodies and WebSocket messages, `bodies` refuses malformed GraphQL requests,
`operations` tells a publish from anything else, `limits` keeps rate limits in Redis, `outages`
turns a database or Redis that is down into 503s (and logs it once), `health` answers /readyz, and
`graphql` is the GraphQL view that puts them in front of Strawberry. Every refusal is a GraphQL-shaped
JSON body (`errors[0].extensions.code`), built by `errors`.
"""
