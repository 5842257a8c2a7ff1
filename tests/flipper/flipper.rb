# The real Flipper (Debian's ruby-flipper with its ActiveRecord adapter), driven by the
# real-Flipper test (tests/api/flipper.rs) on its throwaway PostgreSQL. One process per
# database serves every command a test sends (loading Ruby and ActiveRecord took 0.7 s a
# command): each line on stdin is {"command":…, "input":…}, each answer one line on stdout.
#
#   ruby flipper.rb serve
#
# The commands:
#   apply    [{"feature":…, "op":…, "value":…}, …]   → {"done": n}
#   enabled  {"feature":…, "callers":[{"email":…, "sub":…}, …]}
#                            → {"actors":[…], "enabled":[…]}, the actor as VA.gov derives it:
#                              `email&.downcase || account_uuid`
#   gates    {"feature":…} → each gate's value as Flipper reads it, and its type
#
# DATABASE_URL names the database.
require 'json'
require 'active_record'
require 'flipper'
require 'flipper/adapters/active_record'

ActiveRecord::Base.establish_connection(ENV.fetch('DATABASE_URL'))
ActiveRecord::Base.logger = nil
FLIPPER = Flipper.new(Flipper::Adapters::ActiveRecord.new)
Actor = Struct.new(:flipper_id)

def number(text)
  text.include?('.') || text.include?('e') ? text.to_f : text.to_i
end

def run(command, input)
  flipper = FLIPPER
  case command
  when 'apply'
    input.each do |op|
      feature = flipper[op.fetch('feature')]
      case op.fetch('op')
      when 'add' then flipper.add(op['feature'])
      when 'enable' then feature.enable
      when 'disable' then feature.disable
      when 'percentage' then feature.enable_percentage_of_actors(number(op['value']))
      when 'clear_percentage' then feature.disable_percentage_of_actors
      when 'time' then feature.enable_percentage_of_time(number(op['value']))
      when 'add_actor' then feature.enable_actor(Actor.new(op['value']))
      when 'remove_actor' then feature.disable_actor(Actor.new(op['value']))
      else raise "unknown op #{op['op']}"
      end
    end
    { 'done' => input.size }
  when 'enabled'
    feature = flipper[input.fetch('feature')]
    actors = input.fetch('callers').map { |c| c['email']&.downcase || c['sub'] }
    { 'actors' => actors, 'enabled' => actors.map { |a| feature.enabled?(Actor.new(a)) } }
  when 'gates'
    values = flipper[input.fetch('feature')].gate_values
    out = {}
    %i[boolean actors percentage_of_actors percentage_of_time groups].each do |gate|
      value = values.public_send(gate)
      value = value.to_a.sort if value.is_a?(Set)
      out[gate] = { 'value' => value, 'type' => value.class.name }
    end
    out
  else
    raise "unknown command #{command}"
  end
end

raise 'usage: flipper.rb serve' unless ARGV[0] == 'serve'
$stdout.sync = true
$stdin.each_line do |line|
  request = JSON.parse(line)
  puts JSON.generate(run(request.fetch('command'), request.fetch('input')))
end
