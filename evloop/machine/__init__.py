"""The simulated machine: threads of control, scheduler, choosers, peers, faults."""
