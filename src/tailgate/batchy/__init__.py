"""SLO-driven batch scheduling (Batchy): cost model, fractional buffers, controllers, the control loop."""
