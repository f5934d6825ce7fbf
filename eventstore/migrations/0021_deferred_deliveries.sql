-- Quiet hours: a delivery that fell due outside its recipient's working hours is recorded as
-- 'deferred' while its DeferredDeliveryWorkflow waits for the window (docs/notifications.md); the
-- workflow turns it back to 'pending' when it sends. `deliver_at` says when, for operations.
ALTER TABLE deliveries
    DROP CONSTRAINT deliveries_status_known,
    ADD CONSTRAINT deliveries_status_known
        CHECK (status IN ('pending', 'sent', 'failed', 'dead', 'suppressed_erased', 'deferred')),
    ADD COLUMN deliver_at timestamptz;
