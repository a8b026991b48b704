"""Answer "pong": the cheapest check that the engine (and later an agent) runs tasklets."""

NAME = "ping"
TAGS = ("ping",)
PRIORITY = 10


def main(params, ctx):
    return "pong"
