"""The live FaaS runtime: the function manifest (:mod:`.registry`), sandboxes (:mod:`.sandbox`,
with the code that runs inside them in :mod:`.zygote`), the warm pool driven by a strategy
(:mod:`.pool`) and the HTTP gateway (:mod:`.gateway`). ``tailgate faas serve`` runs it."""
