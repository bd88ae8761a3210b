using ExtProc.Hosting;
using ExtProc.Tenancy.Keys;

if (args.Length > 0 && args[0] == "keys")
{
    return KeysCommand.Run(args, Console.Out, Console.Error, Console.In);
}

var app = ExtProcApplication.Build(args);
await app.RunAsync().ConfigureAwait(false);
return 0;
