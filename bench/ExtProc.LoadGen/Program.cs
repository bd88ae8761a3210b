using ExtProc.LoadGen;

// ExtProc.LoadGen run --out bench/results/<date>-loadgen.md [--profile short|smoke] [--portkey <start-server.js>]
// ExtProc.LoadGen serve extproc|echo|mock|dataplane ...   (started by `run`)
if (args.Length == 0)
{
    Console.Error.WriteLine("usage: ExtProc.LoadGen run --out <file.md> [--profile short|smoke] [--portkey <start-server.js>] [--rates 250,500] [--mixes headers,200b,10kb,100kb] [--step-seconds N] [--no-pin]");
    Console.Error.WriteLine("       ExtProc.LoadGen serve extproc|echo|mock|dataplane [...]");
    return 2;
}

return args[0] switch
{
    "run" => await Run.RunAsync(new Args(args.Skip(1))),
    "report" => Rewrite(new Args(args.Skip(1))),
    "serve" when args.Length > 1 => await Servers.ServeAsync(args[1], new Args(args.Skip(2))),
    _ => 2,
};

// Rewrites the markdown and chart from a run's JSON (same machine fields: run it where the run was made).
static int Rewrite(Args args)
{
    var results = System.Text.Json.JsonSerializer.Deserialize<RunResults>(File.ReadAllText(args.String("json")), Report.JsonOptions)!;
    Report.Write(results, args.String("out"));
    return 0;
}
