using StackExchange.Redis;

namespace ExtProc.Storage.Redis;

/// <summary>
/// How every Redis call on a request's path is made: started on the thread pool (while it reconnects the client
/// can block its caller before it hands back a task: 667 ms measured under kill/restart) and raced against a hard
/// budget (StackExchange.Redis checks its own timeouts only on a 1 s heartbeat, faults.md §0.4).
/// </summary>
internal static class RedisCall
{
    public static Task<T> WithinAsync<T>(Func<Task<T>> call, TimeSpan budget) => Task.Run(call).WaitAsync(budget);

    public static Task WithinAsync(Func<Task> call, TimeSpan budget) => Task.Run(call).WaitAsync(budget);

    /// <summary>What a call that overran its budget, failed in Redis or ran into a disposed connection throws.</summary>
    public static bool Failed(Exception ex) => ex is TimeoutException or RedisException or ObjectDisposedException;
}
