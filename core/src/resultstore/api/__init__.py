"""What callers use: the store, result handles, the waiting machinery and the
asyncio twins. Built on the plugin machinery; backends never import it."""
