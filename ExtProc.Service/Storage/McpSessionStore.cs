namespace ExtProc.Storage;

/// <summary>
/// Who initialised each MCP session: session ids are secrets, so only their hash is a key. A Redis-backed
/// store lets every replica check a binding made by another; the in-memory one serves a single replica.
/// </summary>
internal interface IMcpSessionStore
{
    /// <summary>The owner bound to the session, or null when the session is unknown or expired.</summary>
    ValueTask<string?> GetOwnerAsync(string sessionHash);

    /// <summary>Binds a new session; false when it is already bound to another owner.</summary>
    ValueTask<bool> BindAsync(string sessionHash, string owner);

    ValueTask RemoveAsync(string sessionHash);
}
