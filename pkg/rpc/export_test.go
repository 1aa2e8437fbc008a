package rpc

// SetNextXID makes the client's next call use XID x+1, for tests that
// script the server's replies.
func (c *Client) SetNextXID(x uint32) {
	c.mu.Lock()
	c.nextXID = x
	c.mu.Unlock()
}
