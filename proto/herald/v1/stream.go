package heraldv1

// The setters below let pkg/rpcstream number the calls it carries on RouteStream
// and DeliverStream without knowing which of the two it serves.

// SetCall sets the request's stream fields: its number and the time the server may
// spend on it (0 for no bound).
func (r *RouteBatchRequest) SetCall(seq uint64, timeoutMs int64) {
	r.Seq, r.TimeoutMs = seq, timeoutMs
}

// SetSeq sets the number of the request this response answers.
func (r *RouteBatchResponse) SetSeq(seq uint64) { r.Seq = seq }

// SetControl makes r a control message (seq 0).
func (r *RouteBatchResponse) SetControl(c StreamControl) { r.Control = c }

// SetCall sets the request's stream fields: its number and the time the server may
// spend on it (0 for no bound).
func (r *DeliverBatchRequest) SetCall(seq uint64, timeoutMs int64) {
	r.Seq, r.TimeoutMs = seq, timeoutMs
}

// SetSeq sets the number of the request this response answers.
func (r *DeliverBatchResponse) SetSeq(seq uint64) { r.Seq = seq }

// SetControl makes r a control message (seq 0).
func (r *DeliverBatchResponse) SetControl(c StreamControl) { r.Control = c }
