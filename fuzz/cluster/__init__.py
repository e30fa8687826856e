"""Campaigns across machines, on Ray (`iommufd-fuzz fuzz --ray ADDRESS`).

Only ray_campaign imports Ray (the `ray` extra); the rest is plain Python that the
engines, the manager and the tests use without it:

    exchange.py      the files a worker process shares with the actor that runs it
    hub.py           the cluster's one corpus, finding store and stats (a Ray actor's state)
    kernels.py       shipping a built kernel to a node by its build key
    ray_campaign.py  the actors (hub, one per worker) and the manager's loop
"""
